# t_run.sh - `detvm run`: every guest under KVM, both boot protocols, every
# bad input, Ctrl-C.  Sourced by run.sh.

# --- every guest, native 64-bit boot -----------------------------------------
run_detvm hello run --kernel $G/hello.elf --append "greeting=e2e"
expect "run hello" 1 "RESULT hello ok" "debug-exit"
grep -q "greeting=e2e" "$OUT" && ok "hello sees its command line" || bad "hello sees its command line" "$(head -5 "$OUT")"

run_detvm ticks run --kernel $G/ticks.elf --append "ticks=10"
expect "run ticks" 1 "RESULT ticks ok"

run_detvm rtc run --kernel $G/rtc.elf
expect "run rtc" 1 "RESULT rtc ok"
# The RTC shows the host's date (UTC): compare the year and month.
ym=$(date -u +%Y-%m)
grep -q "$ym" "$OUT" && ok "rtc shows the host date ($ym)" || bad "rtc shows the host date ($ym)" "$(grep -i time "$OUT" | head -3)"

run_detvm rng run --kernel $G/rng.elf
expect "run rng" 1 "RESULT rng ok"

truncate -s 1M "$TMP/disk.img"
run_detvm disk run --kernel $G/disk.elf --disk "$TMP/disk.img"
expect "run disk" 1 "RESULT disk ok"
grep -q "detvm-disk-pattern" "$TMP/disk.img" && ok "disk pattern reached the image file" || bad "disk pattern reached the image file"

run_detvm fault run --kernel $G/fault.elf
expect "run fault" 1 "RESULT fault ok"

run_detvm triple run --kernel $G/triple.elf
expect "run triple" 4 "" "triple-fault"

run_detvm spin run --kernel $G/spin.elf
expect "run spin" 1 "RESULT spin ok"

# A guest that abuses every device and register it can reach, with garbage:
# the monitor must survive it (and must have refused some virtio queues).
run_detvm hostile run --kernel $G/hostile.elf --disk "$TMP/disk.img"
expect "run hostile: the monitor survives a guest that abuses its devices" 1 "hostile: survived"
if grep -q "RESULT hostile ok" "$OUT" && grep -Eq "; [1-9][0-9]* of [0-9]+ rounds ended in DEVICE_NEEDS_RESET" "$OUT"; then
	ok "hostile: garbage virtio queues were refused (DEVICE_NEEDS_RESET)"
else
	bad "hostile: garbage virtio queues were refused (DEVICE_NEEDS_RESET)" "$(grep -E 'virtio|RESULT' "$OUT" | tr '\n' '|')"
fi

# KVM would answer the paravirtual clock MSRs itself, writing host time
# into guest memory where no recording sees it: they must fault instead.
run_detvm pvclock run --kernel $G/pvclock.elf
expect "run pvclock: no host time reaches guest memory through KVM's clock MSRs" 1 "RESULT pvclock ok"

printf 'hello from the host\n' > "$TMP/echo.in"
run_detvm echo run --kernel $G/echo.elf --serial-in "$TMP/echo.in"
expect "run echo" 1 "echo: hello from the host"

# --- multiboot boot of the same ELF files (the a.out kludge), as QEMU does ---
run_detvm mb-hello run --kernel $G/hello.elf --boot multiboot --append "greeting=mb"
expect "run hello --boot multiboot" 1 "RESULT hello ok"
run_detvm mb-ticks run --kernel $G/ticks.elf --boot multiboot --append "ticks=5"
expect "run ticks --boot multiboot" 1 "RESULT ticks ok"

# --- bad inputs: a clear message and status 2 --------------------------------
run_detvm no-kernel run --mem 64M
expect "no --kernel" 2 "" "--kernel FILE is required"
run_detvm missing-kernel run --kernel "$TMP/nope.elf"
expect "missing kernel file" 2 "" "cannot open kernel"
head -c 4096 /dev/urandom > "$TMP/junk.bin"
run_detvm junk-kernel run --kernel "$TMP/junk.bin"
expect "non-ELF kernel" 2 "" "not an ELF file"
run_detvm empty-kernel run --kernel /dev/null
expect "kernel that is not a regular file" 2 "" "not a regular file"
# An ELF64 whose one segment needs 256 MiB at 1 MiB, given 64 MiB.
python3 -c '
import struct, sys
eh = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x100000, 64, 0, 0, 64, 56, 1, 0, 0, 0)
ph = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, 0x100000, 0x100000, 16, 0x10000000, 0x1000)
sys.stdout.buffer.write((eh + ph).ljust(0x1000, b"\0") + b"\xf4" * 16)' > "$TMP/big.elf"
run_detvm big-kernel run --kernel "$TMP/big.elf" --mem 64M
expect "kernel that does not fit in memory" 2 "" "does not fit in guest RAM"
run_detvm bad-mem run --kernel $G/hello.elf --mem 12X
expect "malformed --mem" 2 "" "unknown suffix"
run_detvm huge-mem run --kernel $G/hello.elf --mem 128G
expect "oversized --mem" 2 "" "between 2M and 64G"
run_detvm odd-mem run --kernel $G/hello.elf --mem 1000001
expect "--mem not a multiple of 4 KiB" 2 "" "multiple of 4 KiB"
run_detvm missing-disk run --kernel $G/disk.elf --disk "$TMP/nope.img"
expect "missing disk image" 2 "" "nope.img"
run_detvm dir-disk run --kernel $G/disk.elf --disk "$TMP"
expect "disk image that is a directory" 2 "" "disk image"
run_detvm bad-opt run --kernel $G/hello.elf --frobnicate
expect "unknown option" 2 "" "unknown option '--frobnicate'"
run_detvm bad-boot run --kernel $G/hello.elf --boot bios
expect "bad --boot" 2 "" "expected elf64 or multiboot"
DETVM_KVM_DEV=$TMP/no-kvm run_detvm no-kvm run --kernel $G/hello.elf
expect "/dev/kvm absent" 2 "" "no KVM on this host"
DETVM_KVM_DEV=/dev/null run_detvm null-kvm run --kernel $G/hello.elf
expect "KVM device that is not KVM" 2 "" "is it a KVM device"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod o+rx "$TMP"
	OUT="$TMP/noperm.out"; ERR="$TMP/noperm.err"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$DETVM" run --kernel $G/hello.elf >"$OUT" 2>"$ERR"; RC=$?
	expect "/dev/kvm not permitted" 2 "" "not permitted"
elif [ "$(id -u)" != 0 ] && [ ! -w /dev/kvm ]; then
	run_detvm noperm --kernel $G/hello.elf
	expect "/dev/kvm not permitted" 2 "" "not permitted"
else
	skip "/dev/kvm not permitted" "cannot drop privileges here (no setpriv)"
fi

# --- Ctrl-C stops cleanly with status 130 ------------------------------------
"$DETVM" run --kernel $G/ticks.elf --append "ticks=100000" >"$TMP/int.out" 2>"$TMP/int.err" </dev/null &
pid=$!
sleep 1
kill -INT $pid
wait $pid; RC=$?
OUT=$TMP/int.out; ERR=$TMP/int.err
expect "SIGINT stops the guest cleanly" 130 "" "interrupted"
