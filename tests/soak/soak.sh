#!/bin/bash
# soak.sh - record every replayable test guest under bad host timing and
# check that each recording replays exactly.  Not part of `make test` (it
# takes minutes and hunts for rare timing cases); run it with `make soak`
# (ROUNDS=N, default 2) after changing the recorder or the replayer.
#
# Each round records every guest three times: without delays, with random
# delays of up to 3 ms and up to 25 ms before each interrupt injection
# (DETVM_PERTURB_US), all with a busy loop on the other core.  Each
# recording is replayed: exact console output and "replay matches"; then
# with overshoots injected (DETVM_TEST_OVERSHOOT=7); then `replay --to` at a
# third and two thirds of its exits, from checkpoints and from the start,
# must give the same digests.  A recording that fails is kept in
# $SOAK_KEEP (default /tmp/detvm-soak) and named in the output.
# Found this way: a stepped interrupt delivery that leaked the trap flag,
# a forced exit right after a finished IN, and one right after a wake-up.
set -u
cd "$(dirname "$0")/../.."
D=build/detvm; G=build/guests
ROUNDS=${ROUNDS:-2}
KEEP=${SOAK_KEEP:-/tmp/detvm-soak}
T=$(mktemp -d /tmp/detvm-soak-run.XXXXXX)
load=
cleanup() { [ -n "$load" ] && kill "$load" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$KEEP"
printf 'typed at the console\nsecond line\n' >"$T/in.txt"
truncate -s 1M "$T/disk.img"

guests=("hello" "ticks --append ticks=15" "rtc" "rng" "disk --disk $T/disk.img" "fault"
	"spin --append spin=20000" "memloop --append memloop.k=3" "memloop --append memloop.k=1"
	"flags --append flags.n=20000" "echo --serial-in $T/in.txt" "dirty --append dirty.rounds=3"
	"hostile --disk $T/disk.img --append hostile.seed=7")
( while :; do :; done ) & load=$!

checks=0; fails=0
fail() {  # fail WHAT REC
	fails=$((fails + 1))
	local keep="$KEEP/fail-$fails"
	rm -rf "$keep"; cp -r "$2" "$keep"
	echo "FAIL $1 (kept in $keep)"
}
for round in $(seq "$ROUNDS"); do
	for delay in 0 3000 25000; do
		for spec in "${guests[@]}"; do
			name=${spec%% *}; args=${spec#"$name"}
			rec="$T/rec"; rm -rf "$rec"
			# shellcheck disable=SC2086
			DETVM_PERTURB_US=$delay $D record -o "$rec" --checkpoint-ms 50 --kernel $G/$name.elf $args \
				>"$T/out" 2>"$T/err" </dev/null
			what="$name$args, delays up to ${delay} us, round $round"
			checks=$((checks + 1))
			if ! grep -q "recorded $rec" "$T/err"; then fail "record $what: $(tail -1 "$T/err")" "$rec"; continue; fi
			$D replay "$rec" >"$T/rout" 2>"$T/rerr"
			if ! grep -q "replay matches" "$T/rerr" || ! cmp -s "$T/out" "$T/rout"; then
				fail "replay $what: $(grep replay: "$T/rerr" | head -1)" "$rec"; continue
			fi
			checks=$((checks + 1))
			DETVM_TEST_OVERSHOOT=7 $D replay "$rec" --quiet >/dev/null 2>"$T/rerr"
			grep -q "replay matches" "$T/rerr" || fail "replay with overshoots $what: $(head -1 "$T/rerr")" "$rec"
			exits=$(sed -n 's/^detvm: \([0-9]*\) exits .*/\1/p' "$T/err")
			for to in $((exits / 3)) $((exits * 2 / 3)); do
				checks=$((checks + 1))
				a=$($D replay "$rec" --to "$to" --quiet 2>/dev/null | grep "^exit $to:")
				b=$($D replay "$rec" --to "$to" --from-start --quiet 2>/dev/null | grep "^exit $to:")
				[ -n "$a" ] && [ "$a" = "$b" ] || fail "replay --to $to $what: '$a' vs '$b'" "$rec"
			done
		done
	done
done
echo "soak: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
