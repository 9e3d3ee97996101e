#!/bin/bash
# bench/ckpt_bench.sh - checkpoints: pause and bytes per checkpoint, restore
# time, seek time to random exits, deduplication.  Prints figures; asserts
# nothing.  Part 1 records the `dirty` guest in 256 MiB writing 655 pages
# (1%) between checkpoints; part 2 records every test guest with the default
# checkpoint intervals and seeks to random exits.
cd "$(dirname "$0")/.."
D=build/detvm; G=build/guests; SEEKS=${BENCH_SEEKS:-5}
T=$(mktemp -d /tmp/detvm-ckbench.XXXXXX); trap 'rm -rf "$T"' EXIT
printf 'hello\n' > "$T/in.txt"; truncate -s 1M "$T/disk.img"
now() { date +%s.%N; }
q() { sqlite3 "$1/checkpoints.db" "$2"; }

echo "== incremental checkpoints of a 256 MiB guest, 655 pages (1%) dirty per round"
$D record -o "$T/dirty" --kernel $G/dirty.elf --mem 256M --append "dirty.pages=655 dirty.rounds=20" \
	--checkpoint-exits 40 >/dev/null 2>"$T/dirty.err"
grep -q "recorded" "$T/dirty.err" || { cat "$T/dirty.err"; exit 1; }
grep "checkpoints" "$T/dirty.err"
q "$T/dirty" "select 'full checkpoint 0: pause ' || printf('%.2f', pause_ns/1e6) || ' ms, ' || pages || ' pages, ' || bytes_new || ' bytes' from checkpoints where id=0"
q "$T/dirty" "select 'incremental (' || count(*) || '): pause mean ' || printf('%.2f', avg(pause_ns)/1e6) || ' ms, max ' || printf('%.2f', max(pause_ns)/1e6) || ' ms; pages mean ' || printf('%.0f', avg(pages)) || ', max ' || max(pages) || '; new bytes mean ' || printf('%.0f', avg(bytes_new)) from checkpoints where id > 0 and full = 0"
q "$T/dirty" "select 'with >= 600 dirty pages (' || count(*) || '): pause mean ' || printf('%.2f', avg(pause_ns)/1e6) || ' ms, max ' || printf('%.2f', max(pause_ns)/1e6) || ' ms' from checkpoints where id > 0 and full = 0 and pages >= 600"
echo "database: $(stat -c %s "$T/dirty/checkpoints.db") bytes; trace: $(stat -c %s "$T/dirty/trace") bytes"
last=$(q "$T/dirty" "select exit from checkpoints order by id desc limit 1")
for i in 1 2 3; do
	$D replay "$T/dirty" --to "$last" --quiet 2>&1 >/dev/null | sed -n 's/.*restored checkpoint \([0-9]*\) in \(.*\) ms/restore of checkpoint \1 (256 MiB guest): \2 ms/p'
done

echo
echo "== seeking with the default intervals (--checkpoint-ms 250, --checkpoint-exits 25000)"
printf '%-8s %6s %5s %9s %9s %9s %8s %8s %7s\n' guest exits ckpts restore_ms seek_mean seek_max map_rows pages dedup
for g in hello ticks rtc rng disk fault spin memloop echo dirty; do
	args=""; [ $g = disk ] && args="--disk $T/disk.img"; [ $g = echo ] && args="--serial-in $T/in.txt"
	[ $g = ticks ] && args="--append ticks=100"
	rm -rf "$T/r"
	$D record -o "$T/r" --kernel $G/$g.elf $args >/dev/null 2>"$T/$g.err" </dev/null
	total=$(q "$T/r" "select value from meta where key='end_exits'")
	nck=$(q "$T/r" "select count(*) from checkpoints")
	sum=0; max=0; rsum=0; rn=0
	for n in $(shuf -i 0-"$total" -n "$SEEKS"); do
		a=$(now); $D replay "$T/r" --to "$n" --quiet >/dev/null 2>"$T/seek.err"; b=$(now)
		s=$(echo "$b - $a" | bc); sum=$(echo "$sum + $s" | bc)
		[ "$(echo "$s > $max" | bc)" = 1 ] && max=$s
		r=$(sed -n 's/.*restored checkpoint [0-9]* in \(.*\) ms/\1/p' "$T/seek.err")
		[ -n "$r" ] && { rsum=$(echo "$rsum + $r" | bc); rn=$((rn + 1)); }
	done
	rows=$(q "$T/r" "select count(*) from page_map"); pages=$(q "$T/r" "select count(*) from pages")
	rm_=$([ $rn -gt 0 ] && echo "$rsum / $rn" | bc -l || echo 0)
	printf '%-8s %6s %5s %9.1f %9.3f %9.3f %8s %8s %7.2f\n' $g "$total" "$nck" "$rm_" \
		"$(echo "$sum / $SEEKS" | bc -l)" "$max" "$rows" "$pages" "$(echo "$rows / $pages" | bc -l)"
done
echo "(seek = wall time of 'detvm replay REC --to N' at $SEEKS random exits, process start to exit;"
echo " dedup = page_map rows / distinct stored pages)"
