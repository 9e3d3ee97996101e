# t_checkpoint.sh - checkpoints and seeking: for every guest, the state
# reached by `replay --to N` (restore the last checkpoint <= N, replay the
# rest) equals the state reached by replaying from the start, at random
# exits; the database survives a killed recorder; bad --to values and a
# missing database are handled.  Sourced by run.sh.

C=$TMP/ckpt
printf 'typed at the console\n' > "$TMP/ck-echo-in.txt"
truncate -s 1M "$TMP/ck-disk.img"

# ck_guest NAME CHECKPOINT-EXITS [record args...]
ck_guest() {
	g=$1; every=$2; shift 2
	rm -rf "$C-$g"
	"$DETVM" record -o "$C-$g" --kernel $G/$g.elf --checkpoint-exits "$every" "$@" \
		>"$TMP/ck-$g.out" 2>"$TMP/ck-$g.err" </dev/null
	if ! [ -f "$C-$g/checkpoints.db" ]; then
		bad "checkpoints $g: database written" "$(tail -2 "$TMP/ck-$g.err" | tr '\n' '|')"; return
	fi
	total=$(sqlite3 "$C-$g/checkpoints.db" "select value from meta where key='end_exits'")
	nck=$(sqlite3 "$C-$g/checkpoints.db" "select count(*) from checkpoints")
	if [ -z "$total" ] || [ "${nck:-0}" -lt 2 ]; then
		bad "checkpoints $g: $nck checkpoints over $total exits"; return
	fi
	# Random exits, one exactly at a checkpoint, and the last exit.
	at_ck=$(sqlite3 "$C-$g/checkpoints.db" "select exit from checkpoints order by random() limit 1")
	pts="$at_ck $total $(shuf -i 0-"$total" -n 3 | tr '\n' ' ')"
	for n in $pts; do
		"$DETVM" replay "$C-$g" --to "$n" --quiet >"$TMP/ck-$g-$n.seek" 2>"$TMP/ck-$g-$n.seek.err"; r1=$?
		"$DETVM" replay "$C-$g" --to "$n" --from-start --quiet >"$TMP/ck-$g-$n.full" 2>"$TMP/ck-$g-$n.full.err"; r2=$?
		if [ $r1 -ne 0 ] || [ $r2 -ne 0 ] || ! grep -q "^exit $n: rip" "$TMP/ck-$g-$n.seek" ||
		   ! cmp -s "$TMP/ck-$g-$n.seek" "$TMP/ck-$g-$n.full"; then
			bad "seek equals replay: $g at exit $n of $total" "seek ($r1): $(cat "$TMP/ck-$g-$n.seek") $(tail -1 "$TMP/ck-$g-$n.seek.err")" \
				"full ($r2): $(cat "$TMP/ck-$g-$n.full") $(tail -1 "$TMP/ck-$g-$n.full.err")"
			return
		fi
	done
	# Past the first checkpoint, seeking must really have restored one.
	if grep -q "restored checkpoint" "$TMP/ck-$g-$total.seek.err"; then
		ok "seek equals replay: $g at exits $pts($nck checkpoints)"
	else
		bad "seek to exit $total of $g restored a checkpoint" "$(cat "$TMP/ck-$g-$total.seek.err" | tr '\n' '|')"
	fi
}

ck_guest hello 40 --append "greeting=ck"
ck_guest ticks 100 --append "ticks=10"
ck_guest rtc 250  # its exits vary with the second it starts in: 860-4300
ck_guest rng 100
ck_guest disk 60 --disk "$TMP/ck-disk.img"
ck_guest fault 80
ck_guest spin 100
ck_guest memloop 200
ck_guest echo 60 --serial-in "$TMP/ck-echo-in.txt"

# Guest writes to the disk overlay are part of checkpoints: the disk guest's
# recording has overlay blocks in block_map.
nb=$(sqlite3 "$C-disk/checkpoints.db" "select count(*) from block_map" 2>/dev/null)
[ "${nb:-0}" -gt 0 ] && ok "disk overlay blocks checkpointed ($nb rows)" || bad "disk overlay blocks checkpointed" "block_map rows: $nb"

# Identical pages are stored once.
read -r refs distinct <<<"$(sqlite3 -separator ' ' "$C-memloop/checkpoints.db" \
	"select (select count(*) from page_map), (select count(*) from pages)")"
[ "${refs:-0}" -gt "${distinct:-0}" ] && ok "pages deduplicated: $refs map rows, $distinct distinct pages" \
	|| bad "pages deduplicated" "$refs map rows, $distinct pages"

# --- bad --to values, missing database -------------------------------------
run_detvm ck-past replay "$C-hello" --to 999999999 --quiet
expect "replay --to past the end is an error" 2 "" "ends at exit"
run_detvm ck-neg replay "$C-hello" --to -5
expect "replay --to -5 is refused" 2 "" "not an exit ordinal"
run_detvm ck-fs replay "$C-hello" --from-start
expect "--from-start without --to is refused" 2 "" "goes with --to"
cp -r "$C-hello" "$C-nodb" && rm -f "$C-nodb/checkpoints.db"
run_detvm ck-nodb replay "$C-nodb" --to 100 --quiet
expect "replay --to without a database replays from the start" 0 "^exit 100: rip" "no checkpoint database"
cmp -s "$OUT" "$TMP/ck-hello-100.full" 2>/dev/null || "$DETVM" replay "$C-hello" --to 100 --quiet 2>/dev/null | cmp -s - "$OUT" \
	&& ok "  ... and reaches the same state" || bad "replay --to without a database: same state"
cp "$C-hello/checkpoints.db" "$C-nodb/checkpoints.db"
cp "$C-ticks/trace" "$C-nodb/trace.other" 2>/dev/null
rm -rf "$C-mix"; mkdir -p "$C-mix"; cp "$C-ticks/trace" "$C-mix/trace"; cp "$C-hello/checkpoints.db" "$C-mix/"
run_detvm ck-mix replay "$C-mix" --to 50 --quiet
expect "a database of another recording is not used" 0 "^exit 50: rip" "belongs to another recording"

# A replay from the start does not open the database (replay_session_db: 1-2
# ms of SQLite it does not need), so it leaves it as it is, even with a
# journal beside it that an open would roll back (SQLite takes any journal
# that is not empty for a hot one); replay --to opens it.
rm -rf "$C-lazy"; cp -r "$C-hello" "$C-lazy"
printf 'a journal left by a killed recorder' >"$C-lazy/checkpoints.db-journal"
run_detvm ck-lazy replay "$C-lazy" --quiet
expect "a replay from the start matches without the database" 0 "" "replay matches the recording"
[ -e "$C-lazy/checkpoints.db-journal" ] && ok "  ... and leaves the database and its journal as they were" \
	|| bad "a replay from the start leaves the database as it was" "$(ls "$C-lazy")"
run_detvm ck-lazy-to replay "$C-lazy" --to 100 --quiet
expect "replay --to opens the database (its journal rolled back)" 0 "^exit 100: rip"
[ ! -e "$C-lazy/checkpoints.db-journal" ] && ok "  ... the journal is gone" \
	|| bad "replay --to opens the database" "$(ls "$C-lazy")"

# --- no checkpoints, overwrite ---------------------------------------------------
rm -rf "$C-none"
run_detvm ck-none record -o "$C-none" --kernel $G/hello.elf --no-checkpoints
grep -q "recorded $C-none" "$ERR" && [ ! -e "$C-none/checkpoints.db" ] && ok "record --no-checkpoints writes no database" \
	|| bad "record --no-checkpoints writes no database" "status $RC"
run_detvm ck-force record -o "$C-hello" --kernel $G/hello.elf --force --append "greeting=again"
n2=$(sqlite3 "$C-hello/checkpoints.db" "select count(*) from checkpoints" 2>&1)
grep -q "recorded $C-hello" "$ERR" && [ "$n2" = "0" ] && ok "record --force replaces the database too" || bad "record --force replaces the database" "status $RC, $n2"

# No checkpoint at exit 0 (the state vm_create builds): the first is full.
z=$(sqlite3 "$C-spin/checkpoints.db" "select count(*) from checkpoints where exit = 0" 2>&1)
f=$(sqlite3 "$C-spin/checkpoints.db" "select full from checkpoints order by id limit 1" 2>&1)
[ "$z" = 0 ] && [ "$f" = 1 ] && ok "no checkpoint at exit 0; the first one is full" \
	|| bad "no checkpoint at exit 0; the first one is full" "at exit 0: $z, first full: $f"

# --- a killed recorder leaves a usable database ----------------------------------
rm -rf "$C-kill"
"$DETVM" record -o "$C-kill" --kernel $G/spin.elf --checkpoint-exits 50 --checkpoint-ms 20 \
	>/dev/null 2>"$TMP/ck-kill.err" </dev/null &
kpid=$!
sleep 1
kill -9 $kpid 2>/dev/null; wait $kpid 2>/dev/null
kn=$(sqlite3 "$C-kill/checkpoints.db" "select count(*) from checkpoints" 2>&1)
# The last checkpoint whose resume point the trace's readable prefix holds.
tev=$("$DETVM" verify "$C-kill" 2>&1 | sed -n 's/.* \([0-9]*\) events.*/\1/p' | head -1)
last=$(sqlite3 "$C-kill/checkpoints.db" "select max(exit) from checkpoints where event < ${tev:-0}" 2>&1)
if [ "${kn:-0}" -ge 1 ] 2>/dev/null; then
	"$DETVM" replay "$C-kill" --to "$last" --quiet >"$TMP/ck-kill.seek" 2>"$TMP/ck-kill.seek.err"; r1=$?
	"$DETVM" replay "$C-kill" --to "$last" --from-start --quiet >"$TMP/ck-kill.full" 2>/dev/null; r2=$?
	[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && cmp -s "$TMP/ck-kill.seek" "$TMP/ck-kill.full" \
		&& ok "kill -9 of the recorder: $kn committed checkpoints, seek to exit $last equals replay" \
		|| bad "kill -9: seek after the kill" "$r1/$r2 $(tail -1 "$TMP/ck-kill.seek.err")"
else
	bad "kill -9 of the recorder leaves a readable database" "$kn"
fi
