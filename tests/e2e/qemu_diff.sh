#!/bin/bash
# qemu_diff.sh - differential test of detvm against QEMU (TCG).
#
# Every test guest (build/guests/NAME.elf) runs under
#   qemu-system-x86_64 -accel tcg -M microvm ... -kernel NAME.elf   (multiboot)
# and under
#   build/detvm run --kernel NAME.elf                               (64-bit ELF)
# with the same command line, serial input and a fresh disk image.  Lines
# starting with "time-dependent:" are dropped; the rest of the serial output
# must be identical, and so must the outcome (debug-exit value, triple
# fault, power-off).  The outcome must also be the one the guest expects
# (exit value 0; a triple fault for "triple"), so that two VMMs agreeing on a
# broken guest is no pass.  For "disk", the image files written must be
# identical too.
#
# QEMU's machine is microvm (QEMU_MACHINE=pc to change): like detvm it has
# virtio-mmio transports at 0xfeb00000 (forced to version 2 here), a PIC,
# PIT, RTC, LAPIC and I/O APIC, and its qboot firmware boots multiboot
# kernels.  Its automatic virtio_mmio.device= command-line additions are
# turned off.  On "pc" the virtio guests are skipped (no virtio-mmio).
#
# Usage: tests/e2e/qemu_diff.sh [GUEST...]     (default: every guest but hostile)
# Env:   QEMU (qemu-system-x86_64), QEMU_MACHINE (microvm), TIMEOUT (60),
#        DETVM (build/detvm), DETVM_BOOT (detvm's default, elf64; or multiboot),
#        KEEP=1 keeps the work directory, VERBOSE=1 shows diffs in full.
# Prints one line per guest, then "N passed, N failed[, N skipped]".
# Exit status 0 only if nothing failed.

set -u
cd "$(dirname "$0")/../.." || exit 2

QEMU=${QEMU:-qemu-system-x86_64}
QEMU_MACHINE=${QEMU_MACHINE:-microvm}
TIMEOUT=${TIMEOUT:-60}
DETVM=${DETVM:-build/detvm}
DETVM_BOOT=${DETVM_BOOT:-}
GDIR=build/guests

if [ $# -gt 0 ]; then
	guests=("$@")
else
	guests=()
	for f in guests/*.c; do
		# hostile is no differential guest: what it reads depends on the
		# VMM's devices, and its random port writes would reset QEMU's
		# machine (0x64, 0xcf9).  It is run by t_run.sh and t_record.sh.
		[ "$(basename "$f" .c)" = hostile ] && continue
		guests+=("$(basename "$f" .c)")
	done
fi

if [ ! -x "$DETVM" ] || [ ! -d "$GDIR" ]; then
	make --no-print-directory -s "$DETVM" guests >/dev/null 2>&1 || true
fi

work=$(mktemp -d /tmp/qemu_diff.XXXXXX)
if [ "${KEEP:-0}" = 1 ]; then
	echo "work directory: $work"
else
	trap 'rm -rf "$work"' EXIT
fi

pass=0 fail=0 skip=0

# The command line each guest gets.
guest_append() {
	case "$1" in
	hello) echo "hello-arg=42 detvm differential test" ;;
	ticks) echo "ticks=20" ;;
	*) echo "" ;;
	esac
}

# The outcome each guest must reach.
expected_outcome() {
	case "$1" in
	triple) echo "triple-fault" ;;
	*) echo "exit 0" ;;
	esac
}

# QEMU's exit status (+ its cpu_reset log) -> outcome.
qemu_outcome() {
	local st=$1 log=$2
	if [ "$st" = 124 ] || [ "$st" = 137 ]; then
		echo "timeout"
	elif [ $((st % 2)) = 1 ]; then
		echo "exit $((st >> 1))"
	elif [ "$st" = 0 ] && grep -q "Triple fault" "$log" 2>/dev/null; then
		echo "triple-fault"
	elif [ "$st" = 0 ]; then
		echo "power-off"
	else
		echo "qemu error $st"
	fi
}

# detvm's exit status -> outcome (see 'detvm run --help').
detvm_outcome() {
	local st=$1
	if [ "$st" = 124 ] || [ "$st" = 137 ]; then
		echo "timeout"
	elif [ $((st % 2)) = 1 ]; then
		echo "exit $((st >> 1))"
	else
		case "$st" in
		0) echo "power-off" ;;
		4) echo "triple-fault" ;;
		6) echo "emulation failure" ;;
		8) echo "halted forever" ;;
		*) echo "detvm error $st" ;;
		esac
	fi
}

filter() {
	tr -d '\r' <"$1" | grep -v '^time-dependent:' || true
}

report_fail() {
	local name=$1 why=$2
	echo "FAIL $name: $why"
	fail=$((fail + 1))
}

run_guest() {
	local name=$1 elf="$GDIR/$1.elf" d="$work/$1"
	mkdir -p "$d"
	if [ ! -f "$elf" ]; then
		report_fail "$name" "$elf not built"
		return
	fi
	if [ ! -x "$DETVM" ]; then
		report_fail "$name" "$DETVM not built"
		return
	fi

	local append qargs=() dargs=() input=/dev/null
	[ -n "$DETVM_BOOT" ] && dargs+=(--boot "$DETVM_BOOT")
	append=$(guest_append "$name")
	case "$QEMU_MACHINE" in
	microvm)
		qargs+=(-M "microvm,auto-kernel-cmdline=off" -global "virtio-mmio.force-legacy=false")
		# detvm always offers a virtio-rng; so does this QEMU.
		qargs+=(-device virtio-rng-device)
		;;
	*)
		qargs+=(-M "$QEMU_MACHINE")
		case "$name" in
		rng | disk)
			echo "SKIP $name: QEMU machine '$QEMU_MACHINE' has no virtio-mmio transports"
			skip=$((skip + 1))
			return
			;;
		esac
		;;
	esac
	case "$name" in
	disk)
		truncate -s 1M "$d/qemu.img" "$d/detvm.img"
		qargs+=(-drive "if=none,id=d0,file=$d/qemu.img,format=raw"
			-device "virtio-blk-device,drive=d0")
		dargs+=(--disk "$d/detvm.img")
		;;
	echo)
		printf 'Hello from the differential test, 0123456789 ~!@#$%%^&*() \x01\x7f\n' >"$d/input"
		input="$d/input"
		dargs+=(--serial-in "$input")
		;;
	esac

	timeout "$TIMEOUT" "$QEMU" -accel tcg "${qargs[@]}" -m 128 \
		-kernel "$elf" -append "$append" \
		-display none -monitor none -serial stdio -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-d cpu_reset -D "$d/qemu.log" \
		<"$input" >"$d/qemu.out" 2>"$d/qemu.err"
	local qst=$?
	timeout "$TIMEOUT" "$DETVM" run --kernel "$elf" --append "$append" --mem 128M \
		--serial-out "$d/detvm.out" --quiet "${dargs[@]}" \
		</dev/null >"$d/detvm.stdout" 2>"$d/detvm.err"
	local dst=$?

	local qo dto exp
	qo=$(qemu_outcome "$qst" "$d/qemu.log")
	dto=$(detvm_outcome "$dst")
	exp=$(expected_outcome "$name")
	filter "$d/qemu.out" >"$d/qemu.filtered"
	filter "$d/detvm.out" >"$d/detvm.filtered"

	if [ "$qo" != "$exp" ]; then
		report_fail "$name" "under QEMU the guest ended with '$qo', expected '$exp' ($(tail -n 1 "$d/qemu.out" | tr -d '\r'))"
		head -n 5 "$d/qemu.err" | sed 's/^/    qemu: /'
		return
	fi
	if [ "$qo" != "$dto" ]; then
		report_fail "$name" "outcome differs: QEMU '$qo', detvm '$dto'"
		head -n 5 "$d/detvm.err" | sed 's/^/    detvm: /'
		return
	fi
	if ! cmp -s "$d/qemu.filtered" "$d/detvm.filtered"; then
		report_fail "$name" "serial output differs (time-dependent lines dropped)"
		if [ "${VERBOSE:-0}" = 1 ]; then
			diff -u --label qemu --label detvm "$d/qemu.filtered" "$d/detvm.filtered" | sed 's/^/    /'
		else
			diff -u --label qemu --label detvm "$d/qemu.filtered" "$d/detvm.filtered" | sed -n '3,20p' | sed 's/^/    /'
		fi
		return
	fi
	if [ ! -s "$d/qemu.filtered" ]; then
		report_fail "$name" "no serial output at all"
		return
	fi
	if [ "$name" = disk ] && ! cmp -s "$d/qemu.img" "$d/detvm.img"; then
		report_fail "$name" "the disk images written differ"
		return
	fi
	echo "PASS $name ($qo, $(wc -l <"$d/qemu.filtered") lines compared)"
	pass=$((pass + 1))
}

if ! command -v "$QEMU" >/dev/null 2>&1; then
	for g in "${guests[@]}"; do
		echo "SKIP $g: $QEMU is not installed"
		skip=$((skip + 1))
	done
else
	for g in "${guests[@]}"; do
		run_guest "$g"
	done
fi

summary="$pass passed, $fail failed"
[ "$skip" -gt 0 ] && summary="$summary, $skip skipped"
echo "$summary"
[ "$fail" -eq 0 ]
