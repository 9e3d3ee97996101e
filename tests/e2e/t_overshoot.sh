# t_overshoot.sh - a replay that runs past a forced exit rewinds and goes on.
# Overshoots are rare on a quiet host, so they are injected: with
# DETVM_TEST_OVERSHOOT=N every Nth FAST approach to a forced exit runs 8x
# longer than aimed (replayer/landmark.c); DETVM_TEST_OVERSHOOT_CAREFUL=M
# does it to the CAREFUL approaches too, which then escalate to stepping.
# Whatever was injected, the replay must match the recording, print the
# guest's output exactly once, and report how many overshoots it rewound;
# seeks, `inspect regs` and `inspect search` must give what they give
# without faults.  Sourced by run.sh.

O=$TMP/ov

# ov_replay NAME REC [env assignments...]: replay REC with the given
# environment; sets OVRC and leaves NAME.out / NAME.err in $TMP.
ov_replay() {
	n=$1; r=$2; shift 2
	env "$@" timeout -s INT 300 "$DETVM" replay "$r" >"$TMP/$n.out" 2>"$TMP/$n.err" </dev/null
	OVRC=$?
}

# ov_check NAME RECORDED-OUTPUT: the replay matched, printed exactly the
# recorded output, and rewound at least one overshoot.
ov_check() {
	n=$1; want=$2
	rew=$(sed -n 's/.* \([0-9]*\) overshoots rewound.*/\1/p' "$TMP/$n.err")
	if [ $OVRC -eq 0 ] && grep -q "replay matches the recording" "$TMP/$n.err" &&
	   cmp -s "$want" "$TMP/$n.out" && [ "${rew:-0}" -gt 0 ]; then
		ok "overshoot: $n: $rew overshoots rewound, replay matches, output identical"
	else
		bad "overshoot: $n" "status $OVRC, rewound '${rew}', output $(cmp "$want" "$TMP/$n.out" 2>&1 | head -1)" \
			"$(tail -3 "$TMP/$n.err" | tr '\n' '|')"
	fi
}

"$DETVM" record -o "$O-spin" --kernel $G/spin.elf --append spin=20000 --checkpoint-exits 40 \
	>"$TMP/ov-spin.rec" 2>"$TMP/ov-spin.recerr" </dev/null
"$DETVM" record -o "$O-spin-nock" --kernel $G/spin.elf --append spin=20000 --no-checkpoints \
	>"$TMP/ov-spin-nock.rec" 2>"$TMP/ov-spin-nock.recerr" </dev/null
"$DETVM" record -o "$O-memloop" --kernel $G/memloop.elf --append memloop.n=30000 --checkpoint-exits 100 \
	>"$TMP/ov-memloop.rec" 2>"$TMP/ov-memloop.recerr" </dev/null
nlm=$(sed -n 's/.* \([0-9]*\) landmarks.*/\1/p' "$TMP/ov-spin.recerr")
if [ "${nlm:-0}" -ge 5 ]; then
	ok "overshoot: the spin recording has $nlm forced exits to overshoot"
else
	bad "overshoot: the spin recording has forced exits" "$(tail -3 "$TMP/ov-spin.recerr" | tr '\n' '|')"
fi

ov_replay ov-plain "$O-spin"
if [ $OVRC -eq 0 ] && cmp -s "$TMP/ov-spin.rec" "$TMP/ov-plain.out" && grep -q " 0 overshoots rewound" "$TMP/ov-plain.err"; then
	ok "overshoot: without injection, spin replays with its output and no rewinds"
else
	# A real overshoot on a loaded host is not a failure of this check's
	# subject, but it is worth seeing: say so rather than fail.
	if [ $OVRC -eq 0 ] && cmp -s "$TMP/ov-spin.rec" "$TMP/ov-plain.out"; then
		ok "overshoot: without injection, spin replays with its output ($(grep -o '[0-9]* overshoots rewound' "$TMP/ov-plain.err") on its own)"
	else
		bad "overshoot: plain replay of spin" "status $OVRC" "$(tail -3 "$TMP/ov-plain.err" | tr '\n' '|')"
	fi
fi

ov_replay ov-fast "$O-spin" DETVM_TEST_OVERSHOOT=5
ov_check ov-fast "$TMP/ov-spin.rec"
ov_replay ov-careful "$O-spin" DETVM_TEST_OVERSHOOT=4 DETVM_TEST_OVERSHOOT_CAREFUL=6
ov_check ov-careful "$TMP/ov-spin.rec"
ov_replay ov-nock "$O-spin-nock" DETVM_TEST_OVERSHOOT=5
ov_check ov-nock "$TMP/ov-spin-nock.rec"
ov_replay ov-memloop "$O-memloop" DETVM_TEST_OVERSHOOT=5
ov_check ov-memloop "$TMP/ov-memloop.rec"

# Seeking: the same state at an exit past several overshoots.
total=$(sed -n 's/^detvm: \([0-9]*\) exits.*/\1/p' "$TMP/ov-spin.recerr")
mid=$((total * 2 / 3))
"$DETVM" replay "$O-spin" --to $mid --quiet >"$TMP/ov-to.ref" 2>"$TMP/ov-to.referr"
DETVM_TEST_OVERSHOOT=3 "$DETVM" replay "$O-spin" --to $mid --from-start --quiet >"$TMP/ov-to.out" 2>"$TMP/ov-to.err"; r=$?
if [ $r -eq 0 ] && grep -q "^exit $mid: rip" "$TMP/ov-to.ref" && cmp -s "$TMP/ov-to.ref" "$TMP/ov-to.out"; then
	ok "overshoot: replay --to $mid with overshoots reaches the state a plain seek reaches"
else
	bad "overshoot: replay --to $mid" "status $r: $(cat "$TMP/ov-to.out") vs $(cat "$TMP/ov-to.ref")" "$(tail -2 "$TMP/ov-to.err" | tr '\n' '|')"
fi

# The inspector: regs at an exit, and a search whose hook runs at every exit
# (it must see each exit once, however often the replay rewound).
"$DETVM" inspect "$O-spin" regs --at $mid --from-start >"$TMP/ov-regs.ref" 2>/dev/null
DETVM_TEST_OVERSHOOT=3 "$DETVM" inspect "$O-spin" regs --at $mid --from-start >"$TMP/ov-regs.out" 2>"$TMP/ov-regs.err"; r=$?
if [ $r -eq 0 ] && grep -q "rip" "$TMP/ov-regs.ref" && cmp -s "$TMP/ov-regs.ref" "$TMP/ov-regs.out"; then
	ok "overshoot: inspect regs --at $mid equal with and without overshoots"
else
	bad "overshoot: inspect regs --at $mid" "status $r" "$(diff "$TMP/ov-regs.ref" "$TMP/ov-regs.out" | head -4 | tr '\n' '|') $(tail -1 "$TMP/ov-regs.err")"
fi
# memloop's phase-1 counter ends at the iteration count it prints: its
# 8 bytes appear in memory at one exit among the forced ones.
iters=$(sed -n 's/.*phase 1: \([0-9]*\) iterations.*/\1/p' "$TMP/ov-memloop.rec")
pat=$(printf '%016x' "${iters:-0}" | sed 's/\(..\)/\1 /g' | awk '{for (i = NF; i > 0; i--) printf "%s", $i}')
"$DETVM" inspect "$O-memloop" search --hex "$pat" --from-start >"$TMP/ov-search.ref" 2>/dev/null; r1=$?
DETVM_TEST_OVERSHOOT=3 "$DETVM" inspect "$O-memloop" search --hex "$pat" --from-start >"$TMP/ov-search.out" 2>"$TMP/ov-search.err"; r2=$?
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && grep -q "^first appears: exit" "$TMP/ov-search.ref" && cmp -s "$TMP/ov-search.ref" "$TMP/ov-search.out"; then
	ok "overshoot: inspect search for memloop's counter $iters: $(sed -n 's/^\(first appears: exit [0-9]*\).*/\1/p' "$TMP/ov-search.ref"), equal with overshoots"
else
	bad "overshoot: inspect search" "status $r1/$r2" "$(diff "$TMP/ov-search.ref" "$TMP/ov-search.out" | head -4 | tr '\n' '|') $(tail -1 "$TMP/ov-search.err")"
fi

# A disk image written between a rewind's two VMs: after the VM that
# overshot took its last look at the image, before the next one opens it
# (DETVM_TEST_BETWEEN_VMS holds the replay there until the marker file is
# removed).  The next VM must find the change, against the image as the
# replay first opened it; control: the same pause without a write matches.
truncate -s 1M "$TMP/ov-disk.img"
"$DETVM" record -o "$O-disk" --kernel $G/spin.elf --append spin=20000 --disk "$TMP/ov-disk.img" --checkpoint-exits 40 \
	>"$TMP/ov-disk.rec" 2>"$TMP/ov-disk.recerr" </dev/null
# ov_between NAME WRITE: replay $O-disk with every 10th FAST approach
# overshooting; at the first pause between VMs write a byte to the image if
# WRITE is 1; sets OVRC.
ov_between() {
	n=$1; mark=$TMP/$1.between; rm -f "$mark"
	DETVM_TEST_OVERSHOOT=10 DETVM_TEST_BETWEEN_VMS="$mark" timeout -s INT 300 "$DETVM" replay "$O-disk" \
		>"$TMP/$n.out" 2>"$TMP/$n.err" </dev/null &
	bpid=$!
	for i in $(seq 3000); do [ -e "$mark" ] || ! kill -0 $bpid 2>/dev/null && break; sleep 0.01; done
	paused=no; [ -e "$mark" ] && paused=yes
	[ "$2" = 1 ] && [ $paused = yes ] && printf x | dd of="$TMP/ov-disk.img" bs=1 seek=5000 conv=notrunc 2>/dev/null
	# Later rewinds pause too: let each go on at once.
	while kill -0 $bpid 2>/dev/null; do rm -f "$mark"; sleep 0.01; done
	wait $bpid; OVRC=$?
}
ov_between ov-between0 0
if [ $paused = yes ] && [ $OVRC -eq 0 ] && grep -q "replay matches the recording" "$TMP/ov-between0.err" &&
   cmp -s "$TMP/ov-disk.rec" "$TMP/ov-between0.out"; then
	ok "overshoot: a pause between a rewind's two VMs, the image untouched: the replay matches"
else
	bad "overshoot: a pause between a rewind's VMs, image untouched" "paused $paused, status $OVRC" \
		"$(tail -2 "$TMP/ov-between0.err" | tr '\n' '|')"
fi
ov_between ov-between1 1
if [ $paused = yes ] && [ $OVRC -eq 2 ] &&
   grep -q "disk image '$TMP/ov-disk.img' was modified while in use.*the replay cannot start again from the changed image" \
	"$TMP/ov-between1.err"; then
	ok "overshoot: the image written between a rewind's two VMs: the next VM refuses it, status 2"
else
	bad "overshoot: the image written between a rewind's two VMs" "paused $paused, status $OVRC" \
		"$(tail -2 "$TMP/ov-between1.err" | tr '\n' '|')"
fi
