#!/bin/bash
# bench/run.sh - for each guest: plain run vs record time, record vs replay
# time, exits, events, trace bytes (total, per exit, per second of guest
# time).  +rec_ms is what recording added, in ms (the median of each
# round's record minus the same round's run, which the machine's drift
# between rounds does not move as it moves the medians): a fixed few ms (the
# progress-counter calibration, the trace and database files, the final
# digest and fsyncs) that short guests feel most.
# Prints a table; asserts nothing.  Times are wall-clock medians of
# N runs (default 3: BENCH_RUNS=N).
cd "$(dirname "$0")/.."
D=build/detvm; G=build/guests; N=${BENCH_RUNS:-3}
T=$(mktemp -d /tmp/detvm-bench.XXXXXX); trap 'rm -rf "$T"' EXIT
printf 'hello\n' > "$T/in.txt"; truncate -s 1M "$T/disk.img"
now() { date +%s.%N; }
# rtc waits for the RTC's seconds to advance, from wherever in the second
# it starts: 0 to 1 s of waiting, which made its ratios noise (+147 ms
# "added" by recording in one table).  Its runs therefore start just after
# a wall-clock second begins, and all wait about as long; what recording
# adds before the guest reads the clock is absorbed by that wait.
second_start() { local f; f=$(date +%N); sleep "$(echo "(1000000000 - $f) / 1000000000 + 0.005" | bc -l)"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-8s %8s %8s %6s %7s %8s %6s %7s %7s %8s %7s %9s\n' guest run_s rec_s rec/run +rec_ms replay_s rp/rec exits events bytes B/exit B/guest_s
for g in hello ticks rtc rng disk fault spin memloop echo; do
	args=""; [ $g = disk ] && args="--disk $T/disk.img"; [ $g = echo ] && args="--serial-in $T/in.txt"
	for i in $(seq $N); do
		[ $g = rtc ] && second_start
		a=$(now); $D run --kernel $G/$g.elf $args >/dev/null 2>&1; b=$(now); echo "$b - $a" | bc >> "$T/$g.run"
		rm -rf "$T/rec"; [ $g = rtc ] && second_start
		a=$(now); $D record -o "$T/rec" --kernel $G/$g.elf $args >/dev/null 2>"$T/$g.recerr"; b=$(now); echo "$b - $a" | bc >> "$T/$g.rec"
		a=$(now); $D replay "$T/rec" --quiet 2>"$T/$g.reperr"; b=$(now); echo "$b - $a" | bc >> "$T/$g.rep"
		echo "($(tail -1 "$T/$g.rec") - $(tail -1 "$T/$g.run")) * 1000" | bc >> "$T/$g.add"
	done
	run=$(median < "$T/$g.run"); rec=$(median < "$T/$g.rec"); rep=$(median < "$T/$g.rep"); add=$(median < "$T/$g.add")
	exits=$(sed -n 's/^detvm: \([0-9]*\) exits.*/\1/p' "$T/$g.recerr" | head -1)
	events=$(sed -n 's/.*: \([0-9]*\) events,.*/\1/p' "$T/$g.recerr" | head -1)
	bytes=$(stat -c %s "$T/rec/trace")
	printf '%-8s %8.3f %8.3f %6.2f %7.1f %8.3f %6.2f %7s %7s %8s %7.2f %9.0f\n' $g $run $rec $(echo "$rec / $run" | bc -l) \
		$add \
		$rep $(echo "$rep / $rec" | bc -l) $exits $events $bytes $(echo "$bytes / $exits" | bc -l) $(echo "$bytes / $rec" | bc -l)
	grep -q "replay matches" "$T/$g.reperr" || echo "  ($g: replay did not match: $(grep replay: "$T/$g.reperr" | head -1))"
done
